"""Provider adapters, one sans-I/O module each (see base.py for the protocol).

An adapter module declares `CREDENTIALS` (the provider secret's fields it needs) and
`from_credentials(base_url, credentials)`; `motionrelay.registry` reads the settings and
builds it. Adapters never read settings, secrets or the environment themselves.
"""
