"""Services: one per area of the API, each bound to the client's Session."""
