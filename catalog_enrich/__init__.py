"""catalog-enrich: product images in, clean and queryable catalog attributes out."""
