# One image for every liveroom service (worker, topic init, replay); the command picks the role.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY streams ./streams
COPY sessions ./sessions
COPY bidding ./bidding
COPY highlight ./highlight
COPY liveroom ./liveroom
COPY cliploop ./cliploop
# The volumes' mount points exist in the image, owned by its user: a new named volume
# takes their owner, so the services (not root) can write /data and /clips.
RUN pip install -c requirements.lock . && useradd --create-home liveroom && mkdir -p /data /clips /recordings \
    && chown liveroom:liveroom /data /clips
COPY examples ./examples
USER liveroom
# librosa's numba code compiled once, into the user's cache, not at every first highlight
RUN python -m highlight.warm
ENTRYPOINT ["liveroom"]
CMD ["--help"]
