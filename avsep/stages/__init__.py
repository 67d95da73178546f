"""One module per rules/*.smk: the functions the Snakemake scripts call, each named after its rule."""
