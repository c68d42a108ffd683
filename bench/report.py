"""Turns one run of bench/run.sh into the tables of BENCHMARKS.md and bench/chart.svg.

Usage: report.py WORK_DIR "LOAD DESCRIPTION"

WORK_DIR holds results.tsv (one line per target and round), memory, versions and cgi-N.json
(hyperfine's export). Only the text between the bench markers of BENCHMARKS.md is replaced, so
the prose around it stays.
"""
import json
import statistics
import sys
from collections import OrderedDict
from html import escape
from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
REPO = Path(__file__).resolve().parent.parent


def millis(text):
    """wrk's latency ("812.00us", "1.20ms", "1.01s") in milliseconds."""
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float("nan")


def load(work):
    rows = OrderedDict()  # (chain, name) -> {kind, rps[], p99[], errors, CPU µs per request}
    for line in (work / "results.tsv").read_text().splitlines():
        name, chain, kind, round_, rps, p99, errors, *cpu = line.split("\t")
        row = rows.setdefault((chain, name), {"kind": kind, "rps": [], "p99": [], "errors": 0,
                                              "user": [], "sys": [], "nginx": [], "wrk": [],
                                              "by_round": {}})
        row["rps"].append(float(rps or 0))
        row["by_round"][round_] = float(rps or 0)
        row["p99"].append(millis(p99 or "nan"))
        row["errors"] += int(errors or 0)
        for key, value in zip(("user", "sys", "nginx", "wrk"), cpu):
            row[key].append(float(value))
    for row in rows.values():
        row["median"] = statistics.median(row["rps"])
        row["p99_median"] = statistics.median(row["p99"])
        for key in ("user", "sys", "nginx", "wrk"):
            row[key] = statistics.median(row[key]) if row[key] else float("nan")
    memory = {}
    for line in (work / "memory").read_text().splitlines():
        who, key, value = line.split()
        memory[(who, key)] = int(value)
    versions = [line.split("|", 1) for line in (work / "versions").read_text().splitlines()]
    cgi = OrderedDict()  # command -> mean of each round, in seconds
    for path in sorted(work.glob("cgi-*.json")):
        for r in json.loads(path.read_text())["results"]:
            cgi.setdefault(r["command"], []).append(r["mean"])
    cgi = OrderedDict(sorted(cgi.items(), key=lambda kv: statistics.median(kv[1])))
    return rows, memory, versions, cgi


def best(rows, kind, chain_test):
    found = [(r["median"], chain, name) for (chain, name), r in rows.items()
             if r["kind"] == kind and chain_test(chain)]
    return max(found) if found else (float("nan"), "", "")


def throughput_table(rows):
    chains = OrderedDict()
    for (chain, name), row in rows.items():
        chains.setdefault(chain, []).append((name, row))
    out = ["| chain | server | req/s (median) | spread (min–max) | p99 | ratio to best peer | errors"
           " | server CPU µs/req (user + sys) | nginx µs/req |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for chain, entries in chains.items():
        peers = [r["median"] for _, r in entries if r["kind"] == "peer"]
        top = max(peers) if peers else None
        for name, r in entries:
            ratio = f"{r['median'] / top:.2f}×" if top else "–"
            label = f"**{name}**" if r["kind"] in ("gatewayd", "variant") else name
            # fcgiwrap lets the kernel reap its children: their CPU shows nowhere in /proc.
            unseen = r["kind"] == "ceiling" or "fcgiwrap" in chain
            server = "–" if unseen else f"{r['user']:.1f} + {r['sys']:.1f}"
            ng = f"{r['nginx']:.1f}" if chain != "HTTP direct" else "–"
            out.append(
                f"| {chain} | {label} | {r['median']:,.0f} | {min(r['rps']):,.0f}–{max(r['rps']):,.0f}"
                f" | {r['p99_median']:.2f} ms | {ratio} | {r['errors']} | {server} | {ng} |")
    return out


def cgi_table(cgi):
    c = statistics.median(cgi["C hello"])
    out = ["| program | time per request (median of the rounds' means) | spread (min–max)"
           " | ratio to C hello |", "|---|--:|--:|--:|"]
    for command, means in cgi.items():
        m = statistics.median(means)
        out.append(f"| {command} | {m * 1e3:.3f} ms | {min(means) * 1e3:.3f}–{max(means) * 1e3:.3f} ms"
                   f" | {m / c:.2f}× |")
    return out


def targets(rows, memory, cgi):
    fcgi = lambda chain: "FastCGI" in chain
    scgi = lambda chain: "SCGI" in chain
    uwsgi = lambda chain: "uwsgi" in chain
    direct = lambda chain: chain == "HTTP direct"
    by = {command: statistics.median(means) for command, means in cgi.items()}
    idle = memory[("gatewayd", "idle_kib")]
    per_conn = (memory[("gatewayd", "idle_conns_kib")] - idle) / memory[("gatewayd", "idle_conns")]
    after = memory[("gatewayd", "after_load_kib")]
    checks = []
    for title, test, goal in (("nginx → FastCGI", fcgi, 1.3), ("nginx → SCGI", scgi, 1.3),
                              ("nginx → uwsgi", uwsgi, 1.3), ("HTTP direct", direct, 0.9)):
        g, p = best(rows, "gatewayd", test), best(rows, "peer", test)
        ratio = g[0] / p[0]
        checks.append((f"{title}: best gatewayd variant / best peer variant", f"≥ {goal}×",
                       f"{ratio:.2f}× ({g[0]:,.0f} on {g[1]} / {p[2]} {p[0]:,.0f} on {p[1]})",
                       ratio >= goal))
    gw = by["gatewayd (static build)"]
    ratio = gw / by["C hello"]
    checks.append(("CGI: time per request / C hello (static build)", "≤ 1.5×",
                   f"{ratio:.2f}× ({gw * 1e3:.3f} ms / {by['C hello'] * 1e3:.3f} ms)",
                   ratio <= 1.5))
    checks.append(("Memory: idle RSS", "≤ 8 MiB", f"{idle / 1024:.1f} MiB", idle <= 8192))
    checks.append(("Memory: RSS after the load / idle", "≤ 1.5×",
                   f"{after / idle:.2f}× ({after / 1024:.1f} MiB)", after <= 1.5 * idle))
    checks.append(("Memory: per idle keep-alive connection (1,000 held)", "≤ 8 KiB",
                   f"{per_conn:.1f} KiB", per_conn <= 8))
    for chain, off, on, paired in log_cost(rows):
        ratio = statistics.median(paired)
        checks.append((f"Access log on (the default) / off, {chain}: median of the rounds'"
                       " paired ratios", "≥ 0.95×",
                       f"{ratio:.2f}× ({len(paired)} rounds; medians {on['median']:,.0f} /"
                       f" {off['median']:,.0f})", ratio >= 0.95))
    out = ["| target | goal | measured | met |", "|---|---|---|---|"]
    out += [f"| {t} | {g} | {m} | {'yes' if ok else '**no**'} |" for t, g, m, ok in checks]
    return out, all(ok for *_, ok in checks)


def log_cost(rows):
    """For each chain gatewayd is measured on with its log on too: (chain, off row, on row, the
    ratio on/off of each round). bench/run.sh loads the two back to back in every round, so a
    round's ratio sees one state of a noisy machine; the ratio of medians mixes rounds."""
    out = []
    for (chain, name), on in rows.items():
        off = rows.get((chain, "gatewayd"))
        if name != "gatewayd (log on)" or off is None:
            continue
        paired = [on["by_round"][r] / off["by_round"][r] for r in on["by_round"]
                  if off["by_round"].get(r)]
        if paired:
            out.append((chain, off, on, paired))
    return out


def log_cost_table(rows):
    out = ["| chain | log off (median) | log on (median) | on / off, medians | on / off, each"
           " round | median of the rounds |", "|---|--:|--:|--:|---|--:|"]
    for chain, off, on, paired in log_cost(rows):
        each = ", ".join(f"{r:.2f}" for r in paired)
        out.append(f"| {chain} | {off['median']:,.0f} | {on['median']:,.0f} |"
                   f" {on['median'] / off['median']:.2f}× | {each} |"
                   f" {statistics.median(paired):.2f}× |")
    return out


def budgets(rows, cores):
    """For each nginx chain with a throughput goal: the CPU one request may cost at the goal,
    what nginx and wrk already take of it, and what gatewayd spends in the kernel and in its own
    code. When the rest of the chain plus gatewayd's kernel work alone exceed the budget, no
    gateway code could meet the goal on this machine."""
    out = ["| chain | goal | CPU per request at the goal | nginx + wrk | left for the gateway"
           " | gatewayd: kernel + user | best peer: kernel + user |",
           "|---|--:|--:|--:|--:|--:|--:|"]
    for title, test in (("nginx → FastCGI", lambda c: "FastCGI" in c),
                        ("nginx → SCGI", lambda c: "SCGI" in c),
                        ("nginx → uwsgi", lambda c: "uwsgi" in c)):
        g, p = best(rows, "gatewayd", test), best(rows, "peer", test)
        if not g[1] or not p[1]:
            continue
        gw, peer = rows[(g[1], g[2])], rows[(p[1], p[2])]
        goal = 1.3 * p[0]
        budget = cores * 1e6 / goal
        rest = gw["nginx"] + gw["wrk"]
        out.append(f"| {title} | {goal:,.0f} req/s | {budget:.1f} µs | {rest:.1f} µs"
                   f" | {budget - rest:.1f} µs | {gw['sys']:.1f} + {gw['user']:.1f} µs"
                   f" ({g[1]}) | {peer['sys']:.1f} + {peer['user']:.1f} µs ({p[2]}, {p[1]}) |")
    return out


def memory_table(memory):
    out = ["| server | idle | 1,000 idle keep-alive connections | per connection | after the load |",
           "|---|--:|--:|--:|--:|"]
    for who, label in (("gatewayd", "**gatewayd**"), ("hyper", "hyper hello")):
        idle = memory.get((who, "idle_kib"))
        held = memory.get((who, "idle_conns_kib"))
        n = memory.get((who, "idle_conns"), 1)
        after = memory.get((who, "after_load_kib"))
        fmt = lambda kib: f"{kib / 1024:.1f} MiB" if kib else "–"
        per = f"{(held - idle) / n:.1f} KiB" if held and idle else "–"
        out.append(f"| {label} | {fmt(idle)} | {fmt(held)} | {per} | {fmt(after)} |")
    return out


def chart(rows, path):
    """A horizontal bar per target (median, with a min–max whisker), grouped by chain."""
    bar_h, gap, left, width = 16, 4, 330, 520
    top = max(max(r["rps"]) for r in rows.values())
    scale = width / top
    y, parts, last_chain = 30, [], None
    for (chain, name), r in rows.items():
        if chain != last_chain:
            y += 10
            parts.append(f'<text x="4" y="{y + 12}" font-weight="bold">{escape(chain)}</text>')
            y += bar_h + gap
            last_chain = chain
        colour = {"gatewayd": "#d9480f", "variant": "#f59f00", "peer": "#4c6ef5",
                  "ceiling": "#868e96"}[r["kind"]]
        w = r["median"] * scale
        lo, hi = left + min(r["rps"]) * scale, left + max(r["rps"]) * scale
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{escape(name)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>')
        parts.append(f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}"'
                     ' stroke="#212529" stroke-width="1.5"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 12}">{r["median"]:,.0f}</text>')
        y += bar_h + gap
    height = y + 20
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}"'
            ' font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="4" y="18" font-size="14" font-weight="bold">Requests per second (median of'
            f' rounds; whisker: min–max). gatewayd in orange.</text>')
    path.write_text(head + "".join(parts) + "</svg>\n")


def main():
    work, load_desc = Path(sys.argv[1]), sys.argv[2]
    rows, memory, versions, cgi = load(work)
    cores = int(dict(versions).get("cores", "2"))
    versions = [(k, v) for k, v in versions if k != "cores"]
    chart(rows, REPO / "bench" / "chart.svg")
    target_lines, all_met = targets(rows, memory, cgi)
    section = [BEGIN, "", "### Targets", ""] + target_lines
    section += ["", "### Throughput (`wrk -t1`, req/s)", "",
                f"Load: {load_desc}. Ratios compare medians with the best peer on the same chain.",
                "", "![requests per second per chain](bench/chart.svg)", ""]
    section += throughput_table(rows)
    section += ["", "### The access log's cost: the default config (log on, to a file) against"
                " log off", "", "Each round loads the two back to back, on the same chain: a"
                " round's ratio is paired.", ""]
    section += log_cost_table(rows)
    section += ["", "### Where the CPU goes, against the goals behind nginx", "",
                f"All {cores} cores at 100%: a request may cost `cores × 1 s / goal`. nginx, wrk"
                " and the gateway share those cores; their CPU per request is read from /proc"
                " around each wrk run (medians of the rounds; kernel = system time).", ""]
    section += budgets(rows, cores)
    section += ["", "### CGI: time per request (`hyperfine -N`)", ""] + cgi_table(cgi)
    section += ["", "### Memory (RSS of the server process)", ""] + memory_table(memory)
    section += ["", "### Machine and versions", "", "| | |", "|---|---|"]
    section += [f"| {k} | {v} |" for k, v in versions]
    section += ["", END]
    md = REPO / "BENCHMARKS.md"
    text = md.read_text() if md.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    before, _, rest = text.partition(BEGIN)
    _, _, after = rest.partition(END)
    md.write_text(before + "\n".join(section) + after)
    print("\n".join(target_lines))
    print("every target met" if all_met else "some targets are not met")


main()
