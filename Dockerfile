# The web and worker image of the scaled shape (docker-compose.yml). Not needed to run,
# develop or test the project: `make run` and `make test` work without Docker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --create-home --uid 10001 app

# Dependencies first, pinned by the same constraints as `make install`, so code changes do not
# reinstall them.
COPY pyproject.toml ./
COPY requirements/ requirements/
RUN pip install -c requirements/constraints.txt -e .

COPY . .
# collectstatic imports the settings, which always require a SECRET_KEY; this
# throwaway value exists only for this build step and is not kept in the image.
RUN SECRET_KEY=collectstatic-build-step-only python manage.py collectstatic --no-input --verbosity 0 \
    && chown -R app:app /app/var

USER app
EXPOSE 8000
# docker-compose.yml overrides this for the worker (`python manage.py qcluster`) and sets
# workers/threads/timeout for the web service. 8190 is the longest request line gunicorn takes
# (long filter lists in the query string).
CMD ["gunicorn", "sales_analytics.wsgi:application", "--bind=0.0.0.0:8000", "--workers=2", "--threads=4", \
     "--worker-class=gthread", "--timeout=900", "--graceful-timeout=30", "--limit-request-line=8190", \
     "--error-logfile=-"]
