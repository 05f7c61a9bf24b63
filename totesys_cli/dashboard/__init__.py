"""What the warehouse says about the business: the queries, the page, the server."""
