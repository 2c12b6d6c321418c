"""Local stack for motionrelay: everything needed to run the gateway on loopback."""
