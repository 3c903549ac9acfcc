"""Send rates shared by every worker, kept in Redis (GCRA: one key and one round trip per check).

Limits are checked together and only taken when all allow: global (CAMPAIGN_RATE_PER_SECOND),
per campaign (its `rate_per_minute`) and per recipient domain (CAMPAIGN_DOMAIN_RATE_PER_MINUTE).
Adding workers never raises the rate: they all draw on the same keys. If Redis loses the keys
(a flush), the limits simply start afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

# KEYS: one per limit; ARGV: pairs (emission interval µs, burst tolerance µs).
# Returns {0, 0} when taken, else {µs to wait until every limit allows one more, index of the
# limit that needs the longest wait (1-based)}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local wait = 0
local worst = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + interval - tolerance
  if allow_at > now and allow_at - now > wait then
    wait = allow_at - now
    worst = i
  end
end
if wait > 0 then return {wait, worst} end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local new_tat = tats[i] + interval
  redis.call('SET', key, tostring(new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
end
return {0, 0}
"""


@dataclass(frozen=True)
class Limit:
    key: str
    per_second: float
    burst: int = 1

    def args(self) -> tuple[int, int]:
        interval = int(1_000_000 / self.per_second)
        return interval, interval * max(self.burst, 1)


class Throttle:
    def __init__(self, redis: Redis, prefix: str = "sp:throttle"):
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_GCRA)

    def limits(self, campaign_id: int, domain: str, global_per_second: int, campaign_per_minute: int | None,
               domain_per_minute: int) -> list[Limit]:
        limits = []
        if global_per_second:
            limits.append(Limit(f"{self.prefix}:global", global_per_second, burst=max(1, global_per_second // 10)))
        if campaign_per_minute:
            limits.append(Limit(f"{self.prefix}:campaign:{campaign_id}", campaign_per_minute / 60.0))
        if domain_per_minute:
            limits.append(Limit(f"{self.prefix}:domain:{domain.lower()}", domain_per_minute / 60.0))
        return limits

    def try_acquire(self, limits: list[Limit]) -> float:
        """Take one send from every limit and return 0, or return the seconds to wait (nothing taken)."""
        return self.acquire_or_wait(limits)[0]

    def acquire_or_wait(self, limits: list[Limit]) -> tuple[float, Limit | None]:
        """Like try_acquire, and also say which limit needs the longest wait."""
        if not limits:
            return 0.0, None
        argv: list[int] = []
        for limit in limits:
            argv.extend(limit.args())
        wait_us, worst = self._script(keys=[limit.key for limit in limits], args=argv)
        return int(wait_us) / 1_000_000, (limits[int(worst) - 1] if int(worst) else None)
