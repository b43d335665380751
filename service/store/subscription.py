"""A subscriber thread on the store's events channel that survives Redis restarts.

Pub/sub is at-most-once: the index in Redis stays the source of truth. Whenever events may
have been missed (a reconnection, or a first connection later than `start` waited for), the
callback receives `RESYNC` before the next channel event.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import redis
from redis.exceptions import RedisError

from service.store.events import RESYNC, EventCallback, StoreEvent, decode_event

log = logging.getLogger(__name__)


class Subscription:
    """A daemon thread delivering channel events to `callback`, reconnecting with backoff.

    The callback runs on the subscriber thread: keep it short. Its exceptions are logged.
    """

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        callback: EventCallback,
        poll_s: float = 0.2,
        max_backoff_s: float = 2.0,
    ) -> None:
        self.client = client
        self.channel = channel
        self.callback = callback
        self.poll_s = poll_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._missed = False
        self._backoff_s = 0.05
        self._thread = threading.Thread(target=self._run, name="adapter-store-events", daemon=True)

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    def start(self, wait_s: float = 2.0) -> Subscription:
        """Start listening; wait up to `wait_s` for the subscription to be confirmed."""
        self._thread.start()
        if not self._subscribed.wait(wait_s):
            with self._lock:
                self._missed = self._missed or not self._subscribed.is_set()
            log.warning("events channel not subscribed after %.1fs; will resync on connect", wait_s)
        return self

    def close(self, timeout_s: float = 3.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (RedisError, OSError) as e:
                log.warning("events subscription lost (%s: %s); reconnecting", type(e).__name__, e)
            self._subscribed.clear()
            with self._lock:
                self._missed = True
            if self._stop.wait(self._backoff_s):
                return
            self._backoff_s = min(self._backoff_s * 2, self.max_backoff_s)

    def _listen(self) -> None:
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            confirmations = 0
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=self.poll_s)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # A second confirmation means redis-py reconnected and resubscribed.
                    confirmations += 1
                    self._on_subscribed(reconnected=confirmations > 1)
                elif message["type"] == "message":
                    event = decode_event(message["data"])
                    if event is not None:
                        self._deliver(event)
        finally:
            with contextlib.suppress(RedisError, OSError):
                pubsub.close()

    def _on_subscribed(self, reconnected: bool) -> None:
        with self._lock:
            resync = self._missed or reconnected
            self._missed = False
            self._subscribed.set()
        self._backoff_s = 0.05
        if resync:
            self._deliver(RESYNC)

    def _deliver(self, event: StoreEvent) -> None:
        try:
            self.callback(event)
        except Exception:
            log.exception("adapter-store event callback failed on %r", event)
