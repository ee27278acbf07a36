//! Emulated lab (network namespaces) and lab-PC deployment: placeholder.
