"""Software: sparse weight format, register map, driver, compiler and command line."""
