//! boveda core (in progress).
