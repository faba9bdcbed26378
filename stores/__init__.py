"""hearth stores: sessions, configuration, agent memory, audit and customer profiles."""
