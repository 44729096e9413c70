"""Train the consumer's model into model/: a small random forest on scikit-learn's bundled wine data.

Nothing is downloaded. Run it with any Python that has scikit-learn 1.7.0 and
joblib (the versions the inference image installs from the wheelhouse):

    python make_model.py [OUT_DIR]
"""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "model")
out.mkdir(parents=True, exist_ok=True)
target = out / "model.joblib"
if target.exists():
    print(f"model exists: {target}")
    sys.exit(0)
X, y = load_wine(return_X_y=True)
clf = RandomForestClassifier(n_estimators=25, max_depth=4, random_state=0).fit(X, y)
joblib.dump(clf, target, compress=3)
print(f"trained wine classifier (accuracy {clf.score(X, y):.3f}) -> {target}")
