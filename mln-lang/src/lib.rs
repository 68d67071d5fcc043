//! The MLN language.
