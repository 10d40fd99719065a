"""The carrier simulator, a separate process: its HTTP carrier (``server``) and its SMPP SMSC
(``smsc``), with the same outcomes by destination number."""
