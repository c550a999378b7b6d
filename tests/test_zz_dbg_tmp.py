from collections import Counter
import tests.test_ordering_model as m


def test_dbg(redis_client, monkeypatch):
    seen = Counter()
    monkeypatch.setattr(m, "event", lambda e: seen.update([e]))
    m.test_ordering_scripts_follow_the_model(redis_client)
    for k, v in sorted(seen.items()):
        print(f"{v:6} {k}")
