# The two commands of the README. Both set everything up first (idempotent, cached).
.PHONY: demo test lint

DEMO_ARGS ?=

demo:
	@venv=$$(scripts/setup.sh runtime) && "$$venv/bin/shopstream" demo $(DEMO_ARGS)

test:
	@venv=$$(scripts/setup.sh all) && \
	  echo "== ruff" && "$$venv/bin/ruff" check . && \
	  echo "== mypy" && "$$venv/bin/mypy" --cache-dir "$${XDG_CACHE_HOME:-$$HOME/.cache}/shopstream/mypy" && \
	  echo "== pytest" && "$$venv/bin/python" -m pytest -q --durations=15

lint:
	@venv=$$(scripts/setup.sh all) && "$$venv/bin/ruff" check . && \
	  "$$venv/bin/mypy" --cache-dir "$${XDG_CACHE_HOME:-$$HOME/.cache}/shopstream/mypy"
