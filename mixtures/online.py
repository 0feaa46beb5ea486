"""Online EM (Cappé–Moulines): statistics averaged with a decreasing step size, in optax style.

``online_em(...)`` returns an :class:`OnlineEM` pair of pure ``init`` and
``update`` functions over an :class:`OnlineState`; :func:`fit_online` runs
them over any source of batches. See ``docs/scaling.md``.
"""

from mixtures._src.fitting.online import OnlineEM, OnlineResult, OnlineState, fit_online, online_em, polynomial_decay

__all__ = ["OnlineEM", "OnlineResult", "OnlineState", "fit_online", "online_em", "polynomial_decay"]
