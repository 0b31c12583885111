"""The build's configuration: the frozen model (`model`), the YAML readers (`hardware`, `profiles`) and the
line-aware YAML loading they share (`yamlconf`)."""
