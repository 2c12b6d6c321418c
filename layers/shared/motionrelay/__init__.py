"""motionrelay: a serverless gateway for Kling 2.6 Motion Control across resellers."""
