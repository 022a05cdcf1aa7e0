-- POST /oauth/token with the development client (HTTP Basic local-client:local-secret).
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=shows.read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic bG9jYWwtY2xpZW50OmxvY2FsLXNlY3JldA=="
