"""Search: exact inner-product search block by block, and the same evaluation on a Ray cluster."""
