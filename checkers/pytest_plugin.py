"""pytest plugin: ``--kinv`` turns the kinv registry into test items (filled in below)."""
