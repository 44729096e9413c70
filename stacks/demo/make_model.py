"""Train the demo model (scikit-learn's bundled iris data; nothing downloaded) into model/."""

import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "model")
out.mkdir(parents=True, exist_ok=True)
target = out / "model.joblib"
if target.exists():
    print(f"model exists: {target}")
    sys.exit(0)
X, y = load_iris(return_X_y=True)
clf = LogisticRegression(max_iter=500, random_state=0).fit(X, y)
joblib.dump(clf, target)
print(f"trained iris classifier (accuracy {clf.score(X, y):.3f}) -> {target}")
