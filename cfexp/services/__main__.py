"""python -m cfexp.services"""

from cfexp.services.cluster import main

raise SystemExit(main())
