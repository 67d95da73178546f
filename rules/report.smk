# Paper tables as CSV (each with the paper's numbers beside it in *_vs_paper.csv).


rule separation_table:
    input:
        summaries=table_summaries,
        per_mixture=table_per_mixture,
        code=code("separation_table"),
    output:
        table=report("results/{table}.csv", caption="../report/separation_table.rst", category="HFRA", labels={"table": "{table}"}),
        vs_paper=report("results/{table}_vs_paper.csv", caption="../report/separation_table.rst", category="HFRA vs paper", labels={"table": "{table}"}),
    wildcard_constraints:
        table="|".join(SEPARATION_TABLES) or "(?!)",
    params:
        table=lambda w: config["tables"][w.table],
        labels=lambda w: method_labels(config, config["tables"][w.table]["methods"]),
    log:
        "logs/report/{table}.log",
        usage="logs/benchmarks/report/{table}.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/separation_table.py"


rule probe_table:
    input:
        manifest=lambda w: f"data/{config['tables']['table4']['dataset']}/extract/manifest.parquet",
        checkpoints=table_checkpoints("table4") if "table4" in config["tables"] else [],
        clap_npy=lambda w: f"data/{config['tables']['table4']['dataset']}/embed/clap_clips.npy",
        clap_idx=lambda w: f"data/{config['tables']['table4']['dataset']}/embed/clap_clips.parquet",
        clap_meta=lambda w: f"data/{config['tables']['table4']['dataset']}/embed/clap_clips.json",
        code=code("probe_table"),
    output:
        table=report("results/table4.csv", caption="../report/probe_table.rst", category="HFRA", labels={"table": "table4"}),
        vs_paper=report("results/table4_vs_paper.csv", caption="../report/probe_table.rst", category="HFRA vs paper", labels={"table": "table4"}),
    params:
        table=config["tables"].get("table4"),
    log:
        "logs/report/table4.log",
        usage="logs/benchmarks/report/table4.tsv",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/probe_table.py"


rule gap_table:
    input:
        manifest=lambda w: f"data/{config['tables']['table5']['dataset']}/extract/manifest.parquet",
        checkpoints=table_checkpoints("table5") if "table5" in config["tables"] else [],
        clip_npy=lambda w: f"data/{config['tables']['table5']['dataset']}/embed/clip_test.npy",
        clip_idx=lambda w: f"data/{config['tables']['table5']['dataset']}/embed/clip_test.parquet",
        clip_meta=lambda w: f"data/{config['tables']['table5']['dataset']}/embed/clip_test.json",
        code=code("gap_table"),
    output:
        table=report("results/table5.csv", caption="../report/gap_table.rst", category="HFRA", labels={"table": "table5"}),
        vs_paper=report("results/table5_vs_paper.csv", caption="../report/gap_table.rst", category="HFRA vs paper", labels={"table": "table5"}),
    params:
        table=config["tables"].get("table5"),
    log:
        "logs/report/table5.log",
        usage="logs/benchmarks/report/table5.tsv",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/gap_table.py"


rule per_instrument_table:
    input:
        per_mixture=lambda w: expand(
            "results/eval/{dataset}/{run}.parquet",
            dataset=config["tables"]["tableA1"]["dataset"],
            run=table_runs(config["tables"]["tableA1"]["methods"]),
        ),
        code=code("per_instrument_table"),
    output:
        table=report("results/tableA1.csv", caption="../report/per_instrument_table.rst", category="HFRA", labels={"table": "tableA1"}),
        vs_paper=report("results/tableA1_vs_paper.csv", caption="../report/per_instrument_table.rst", category="HFRA vs paper", labels={"table": "tableA1"}),
    params:
        table=config["tables"].get("tableA1"),
    log:
        "logs/report/tableA1.log",
        usage="logs/benchmarks/report/tableA1.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/per_instrument_table.py"


rule acoustics:
    input:
        manifest="data/{dataset}/extract/manifest.parquet",
        code=code("acoustics"),
    output:
        "data/{dataset}/acoustics.parquet",
    log:
        "logs/report/acoustics/{dataset}.log",
        usage="logs/benchmarks/report/acoustics/{dataset}.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/acoustics.py"


rule figure1:
    input:
        acoustics=lambda w: f"data/{config['figures']['figure1']['dataset']}/acoustics.parquet",
        table_a1="results/tableA1.csv",
        code=code("figure1"),
    output:
        png=report("results/figure1.png", caption="../report/figure1.rst", category="HFRA figures", labels={"figure": "figure1"}),
        csv="results/figure1.csv",
    params:
        figure=config.get("figures", {}).get("figure1"),
    log:
        "logs/report/figure1.log",
        usage="logs/benchmarks/report/figure1.tsv",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figure1.py"


rule figure3:
    input:
        unpack(figure3_inputs),
        code=code("figure3"),
    output:
        png=report("results/figure3.png", caption="../report/figure3.rst", category="HFRA figures", labels={"figure": "figure3"}),
        audio=directory("results/figure3_audio"),
    params:
        figure=config.get("figures", {}).get("figure3"),
    log:
        "logs/report/figure3.log",
        usage="logs/benchmarks/report/figure3.tsv",
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/figure3.py"
