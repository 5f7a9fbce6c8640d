"""The seed-comparison script reads compare.sh's summary lines right."""

from __future__ import annotations

from compare_seed import parse_summary, table


def test_a_summary_line_gives_its_figures_and_the_lost_deliveries() -> None:
    line = (
        "quartchat: N=1000 R=40 acked=400/400 deliv=399000/400000 dps=39091 "
        "p50=176.2 p99=244.5 max=301 srvCPU=99% rss=108.3MB genCPU=17%\n"
    )
    figures = parse_summary(line)
    assert figures is not None
    assert figures["server"] == "quartchat"
    assert (figures["receivers"], figures["acked"], figures["sent"]) == (1000, 400, 400)
    assert figures["lost"] == 1000
    latency_and_costs = (figures["p50"], figures["p99"], figures["cpu"], figures["rss"])
    assert latency_and_costs == (176.2, 244.5, 99, 108.3)
    assert "| quartchat | 400/400 | 1000 | 39,091 |" in table({"fanout-40": [figures]})


def test_other_lines_are_not_summaries() -> None:
    assert parse_summary("ratio quartchat/seed: deliveries/s 1.00, p99 3.06") is None
    assert parse_summary("seed: N=100 R=closed-loop acked=") is None
