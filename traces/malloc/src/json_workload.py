"""Python JSON workload for the allocation trace `python-json` (traces/malloc/catalog.toml):
build 1,500 nested records, serialize, parse, transform and re-serialize them twice.
Deterministic (seeded); prints a checksum."""
import json
import random
import zlib

rng = random.Random(42)
records = [{"id": i, "name": f"user-{i:05d}", "score": rng.random(),
            "tags": [rng.choice("abcdefgh") * rng.randint(1, 6) for _ in range(rng.randint(0, 6))],
            "address": {"city": rng.choice(["Lyon", "Oslo", "Lima", "Pune"]),
                        "zip": rng.randint(10000, 99999)}}
           for i in range(1500)]
crc = 0
for rnd in range(2):
    text = json.dumps(records)
    back = json.loads(text)
    for r in back:
        r["score"] = round(r["score"] * (rnd + 1), 6)
        r["tags"] = sorted(set(r["tags"]))
    text = json.dumps(back, sort_keys=True)
    crc = zlib.crc32(text.encode(), crc)
    records = back
print(f"json checksum {crc:08x}")
