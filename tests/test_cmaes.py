import numpy as np

from utils.engine.cmaes import es_state, make_es, restore_es


def sphere(X):
    return [float(np.sum((np.asarray(x) - 0.5) ** 2)) for x in X]


def test_restored_search_continues_the_same_search():
    es = make_es(np.zeros(20), 0.3, 8, seed=0)
    for _ in range(30):
        X = es.ask()
        es.tell(X, sphere(X))
    state = es_state(es)
    again = restore_es(state, seed=0)
    assert again.countiter == 30 and again.countevals == es.countevals
    np.testing.assert_allclose(again.mean, es.mean)
    np.testing.assert_allclose(again.sm.C, es.sm.C)
    assert again.sigma == es.sigma and again.best.f == es.best.f
    # it keeps improving from there, unlike a fresh search from the same mean
    fresh = make_es(es.mean, 0.3, 8, seed=0)
    for _ in range(10):
        for e in (again, fresh):
            X = e.ask()
            e.tell(X, sphere(X))
    assert again.best.f < sphere([fresh.mean])[0]
    assert again.countiter == 40
