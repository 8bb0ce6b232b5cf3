"""Printing a benchmark's results: an aligned table for people, then one JSON line for tools."""

import json


def print_report(report, rows, first_column, output=None):
    """Prints `rows` ({row name: {column: value}}) as a table, then `report` as JSON.

    Writes `report` to `output` too when given.
    """
    columns = list(next(iter(rows.values())))
    width = max(len(first_column), *(len(name) for name in rows)) + 2
    widths = [max(len(column), *(len(str(row[column])) for row in rows.values())) + 2
              for column in columns]
    print(f"{first_column:<{width}}" + "".join(f"{column:>{w}}" for column, w in zip(columns, widths)))
    for name, row in rows.items():
        print(f"{name:<{width}}" + "".join(f"{str(row[column]):>{w}}"
                                           for column, w in zip(columns, widths)))
    print(json.dumps(report))
    if output:
        with open(output, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
