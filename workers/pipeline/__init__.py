"""How work moves through the record between stages: claiming due rows (``claims``), moving a
message's status with its event and callback (``transitions``), waking a stage (``wakeup``), a
sender's throughput (``throttle``) and releasing scheduled messages (``scheduling``)."""
