"""branched_mtl.pipeline.stages.StageBook: completion records, found by
fingerprint."""
import json

from branched_mtl.pipeline.stages import StageBook


def test_a_record_under_an_older_fingerprint_is_found_and_re_keyed(
        tmp_path):
    book = StageBook(str(tmp_path))
    book.finish('rsa', 'old', dict(mean=1.0))
    assert book.done('rsa', 'new') is None
    assert book.done('rsa', 'new', 'other') is None
    assert book.done('rsa', 'new', 'other', 'old') == dict(mean=1.0)
    record = json.loads((tmp_path / 'stages' / 'rsa.json').read_text())
    assert record == dict(fingerprint='new', result=dict(mean=1.0))
    # the older fingerprint no longer matches: the record is the new one's
    assert book.done('rsa', 'old') is None
    assert book.done('rsa', 'new') == dict(mean=1.0)
