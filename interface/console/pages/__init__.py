"""The console's pages: sign-in, the administrators' screens, the support screens."""
