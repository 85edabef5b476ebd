"""An experiment's TOML, validated into typed settings: runs, the [sweep] and [eval] tables, and --set overrides."""
