# totesys: the scheduled ETL job. Built in two stages: wheels first, then a slim image
# holding only the installed package, run as a non-root user.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY totesys_cli ./totesys_cli
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOTESYS_LOG_FORMAT=json
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin totesys
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels
USER 10001
WORKDIR /home/totesys
ENTRYPOINT ["totesys"]
CMD ["run-all"]
