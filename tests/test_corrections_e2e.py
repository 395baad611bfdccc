"""An editor's corrections on data/samples/, with the real model and the real CLI, over five nights.

Nights 1 and 2 build a state from data/samples/ (wires and web pages, then API items and feeds). The
editor unlinks two reports of the Berlinale story and links the two earthquake stories; night 3
(reprints of the Berlinale pages arrive, which would bridge the unlinked pair) and nights 4 and 5 keep
the corrections; a night with no new article prints exactly the stories a correction changed. The same
corrections given to a one-shot run as a JSONL file give the nightly partition.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sklearn.metrics import adjusted_rand_score
from test_e2e import GOLD, SAMPLES, gold_key, jsonl, storyclust

pytestmark = pytest.mark.model

NIGHTS = ["2026-11-01T02:00:00Z", "2026-11-02T02:00:00Z", "2026-11-03T02:00:00Z", "2026-11-04T02:00:00Z",
          "2026-11-05T02:00:00Z", "2026-11-06T02:00:00Z", "2026-11-07T02:00:00Z"]


def night(state: Path, now: str, *folders: Path) -> tuple[int, list[dict], str]:
    proc = storyclust("run", *map(str, folders), "--state", str(state), "--now", now, "--story-window", "30d")
    return proc.returncode, jsonl(proc.stdout), proc.stderr


def memberships(state: Path) -> dict[str, str]:
    proc = storyclust("stories", "--state", str(state))
    assert proc.returncode == 0, proc.stderr
    return {a["id"]: s["story_id"] for s in jsonl(proc.stdout) for a in s["articles"]}


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    """A state after nights 1 and 2, and the article id of every gold entry."""
    root = tmp_path_factory.mktemp("corrections")
    state = root / "state.db"
    first = night(state, NIGHTS[0], SAMPLES / "wires", SAMPLES / "web")
    second = night(state, NIGHTS[1], SAMPLES / "api", SAMPLES / "feeds")
    assert first[0] == 0 and second[0] == 0, first[2] + second[2]
    proc = storyclust("stories", "--state", str(state))
    ids = {gold_key(a): a["id"] for s in jsonl(proc.stdout) for a in s["articles"]}
    return root, state, ids


def test_corrections_change_the_next_nights_and_stick(two_nights):
    root, state, ids = two_nights
    berlinale = [ids[k] for k in GOLD["stories"]["culture-berlinale-golden-bear"]]
    poso, chile = ids[GOLD["stories"]["quake-poso-2026-01"][0]], ids[GOLD["stories"]["quake-antofagasta-2026-07"][0]]
    before = memberships(state)
    assert len({before[i] for i in berlinale}) == 1 and before[poso] != before[chile]

    unlinked = (berlinale[0], berlinale[2])
    proc = storyclust("unlink", *unlinked, "--state", str(state), "--note", "the jury's and the critics' stories")
    assert proc.returncode == 0, proc.stderr
    assert jsonl(proc.stdout)[0]["unlink"] == list(unlinked)

    # night 3: two new articles that tell both unlinked reports at once arrive (they would bridge the pair)
    texts = {a["id"]: a for a in jsonl(storyclust("ingest", str(SAMPLES)).stdout)}
    a, b = texts[unlinked[0]], texts[unlinked[1]]
    reprints = root / "night3"
    reprints.mkdir()
    (reprints / "roundup.jsonl").write_text("".join(
        json.dumps({"id": f"roundup-{k}", "title": first["title"], "lang": first["lang"],
                    "text": first["text"] + "\n\n" + second["text"]}, ensure_ascii=False) + "\n"
        for k, (first, second) in enumerate(((a, b), (b, a)))), encoding="utf-8")
    code, printed, err = night(state, NIGHTS[2], reprints)
    assert code == 0, err
    after = memberships(state)
    assert after[unlinked[0]] != after[unlinked[1]]
    split = [s for s in printed if s.get("split_from") == before[unlinked[0]]]
    assert len(split) == 1 and split[0]["status"] == "new"
    assert any(a["joined_by"] == "editor" for s in printed for a in s["articles"] if a["id"] in unlinked)

    for now in NIGHTS[3:5]:  # two more nights, with nothing new: still apart
        assert night(state, now, reprints)[0] == 0
        assert memberships(state)[unlinked[0]] != memberships(state)[unlinked[1]]

    # link the two earthquakes: the next run, with no new article, prints exactly the two changed stories
    assert storyclust("link", poso, chile, "--state", str(state)).returncode == 0
    code, printed, err = night(state, NIGHTS[5], reprints)
    assert code == 0, err
    after = memberships(state)
    assert after[poso] == after[chile]
    by_id = {s["story_id"]: s for s in printed}
    assert set(by_id) == {before[poso], before[chile]}
    (gone,) = [s for s in printed if s["status"] == "closed"]
    assert gone["merged_into"] in by_id and by_id[gone["merged_into"]]["status"] == "updated"
    code, printed, _ = night(state, NIGHTS[6], reprints)
    assert code == 0 and printed == []  # nothing changes any more

    # the same corrections, as a file, for a one-shot run over the same inputs
    file = root / "corrections.jsonl"
    file.write_text(json.dumps({"type": "correction", "unlink": list(unlinked)}) + "\n"
                    + json.dumps({"type": "correction", "link": [poso, chile]}) + "\n", encoding="utf-8")
    proc = storyclust("run", str(SAMPLES), str(reprints), "--corrections", str(file))
    assert proc.returncode == 0, proc.stderr
    one_shot = {a["id"]: s["story_id"] for s in jsonl(proc.stdout) for a in s["articles"]}
    nightly = memberships(state)
    assert sorted(one_shot) == sorted(nightly)
    keys = sorted(nightly)
    assert adjusted_rand_score([one_shot[k] for k in keys], [nightly[k] for k in keys]) == 1.0
