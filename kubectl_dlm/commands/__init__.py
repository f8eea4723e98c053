"""One module per command; each is thin: parse flags, call one function, print."""
