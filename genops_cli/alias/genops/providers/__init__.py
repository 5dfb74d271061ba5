"""Provider integrations of the guide's import path; `genops.providers.haystack` is the Haystack one."""
