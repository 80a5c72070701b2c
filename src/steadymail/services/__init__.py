"""The service layer: what the API and the CLI both call. Business rules live here or below."""
