"""The client library a department uses (planned with issues 3 to 5). Imports no server code."""
