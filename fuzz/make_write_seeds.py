#!/usr/bin/python3
"""Seeds for fuzz_mongo_write: [request document][reply document] as pymongo sends and FerretDB answers
insert/update/delete (Debian's python3-bson). Run from the repository root; writes fuzz/corpus/fuzz_mongo_write/."""
import os
import bson
from bson.timestamp import Timestamp

out = "fuzz/corpus/fuzz_mongo_write"
os.makedirs(out, exist_ok=True)
E = bson.BSON.encode
seeds = {
    "insert": ({"insert": "orders", "ordered": True, "$db": "shop", "documents": [{"_id": 1, "x": 1}, {"x": 2}]},
               {"n": 2, "ok": 1.0}),
    "insert_dup": ({"insert": "orders", "ordered": False, "$db": "shop", "documents": [{"_id": 1}, {"_id": 1}]},
                   {"n": 1, "writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}], "ok": 1.0}),
    "update_upsert": ({"update": "orders", "$db": "shop", "updates": [
                          {"q": {"_id": 1}, "u": {"$set": {"x": 2}}},
                          {"q": {"_id": {"a": 1}}, "u": {"y": 1}, "upsert": True}]},
                      {"n": 2, "nModified": 1, "upserted": [{"index": 1, "_id": {"a": 1}}], "ok": 1.0}),
    "update_many": ({"update": "orders", "$db": "shop", "updates": [
                        {"q": {"x": {"$gt": 1}}, "u": {"$inc": {"x": 1}}, "multi": True}]},
                    {"n": 4, "nModified": 3, "ok": 1.0}),
    "delete": ({"delete": "orders", "$db": "shop", "deletes": [{"q": {"_id": "k"}, "limit": 1}]},
               {"n": 1, "operationTime": Timestamp(1733250000, 7), "ok": 1.0}),
}
for name, (req, rep) in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(E(req) + E(rep))
