import sys

from benchmarks.http_face.phase import main

sys.exit(main())
