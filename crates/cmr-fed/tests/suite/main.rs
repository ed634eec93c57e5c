//! Integration tests of cmr-fed.
