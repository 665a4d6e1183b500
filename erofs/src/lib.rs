//! EROFS writer: converts one OCI layer tar into one EROFS image.
