# Paper tables as CSV.


rule table1:
    input:
        summaries=lambda w: expand(
            "results/eval/{dataset}/{model}.json",
            dataset=config["tables"]["table1"]["dataset"],
            model=config["tables"]["table1"]["methods"],
        ),
        code=code("report.py"),
    output:
        "results/table1.csv",
    params:
        table=config["tables"]["table1"],
        labels=lambda w: [config["models"][m]["label"] for m in config["tables"]["table1"]["methods"]],
    log:
        "logs/report/table1.log",
    benchmark:
        "logs/benchmarks/report/table1.tsv"
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/table.py"
