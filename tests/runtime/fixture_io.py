"""Save/load lists of kernel cases (dicts of scalars, tuples and numpy arrays) as .npz.

Arrays go in as ``c{i}.{key}``; everything else in one JSON string ``meta``.
No pickle, so the fixtures load with ``allow_pickle=False``.
"""

import json

import numpy as np


def save_cases(path, cases, **extra_arrays):
    meta, arrays = [], dict(extra_arrays)
    for i, case in enumerate(cases):
        m = {}
        for key, value in case.items():
            if isinstance(value, np.ndarray):
                arrays[f"c{i}.{key}"] = value
            elif isinstance(value, dict):
                sub = {}
                for k2, v2 in value.items():
                    if isinstance(v2, np.ndarray):
                        arrays[f"c{i}.{key}.{k2}"] = v2
                    else:
                        sub[k2] = v2
                m[key] = {"__dict__": sub}
            else:
                m[key] = value
        meta.append(m)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **arrays)


def load_cases(path):
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        extra = {k: z[k] for k in z.files if k != "meta" and not k.startswith("c")}
        cases = []
        for i, m in enumerate(meta):
            case = {}
            for key, value in m.items():
                if isinstance(value, dict) and "__dict__" in value:
                    value = dict(value["__dict__"])
                    prefix = f"c{i}.{key}."
                    for k in z.files:
                        if k.startswith(prefix):
                            value[k[len(prefix):]] = z[k]
                case[key] = tuple(value) if isinstance(value, list) else value
            prefix = f"c{i}."
            for k in z.files:
                if k.startswith(prefix) and k.count(".") == 1:
                    case[k[len(prefix):]] = z[k]
            cases.append(case)
    return cases, extra
