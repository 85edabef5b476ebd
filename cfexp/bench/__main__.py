"""python -m cfexp.bench"""

from cfexp.bench.run import main

raise SystemExit(main())
