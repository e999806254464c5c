"""Safety: PHI de-identification, crisis detection, the audit log and the guard of the ask flow."""
