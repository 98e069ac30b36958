"""Use cases and services. Depends on the domain and on the ports declared here."""
