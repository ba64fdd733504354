"""pytest plugin for areplicate.testing (fixtures are added with the fake server)."""
