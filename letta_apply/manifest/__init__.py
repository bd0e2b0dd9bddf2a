"""Reading the manifest: files (YAML with positions), variables, templates, validation, and the
desired state they make. No request is sent from here."""
