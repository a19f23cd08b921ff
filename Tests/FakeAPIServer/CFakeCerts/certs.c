#include "cfakecerts.h"
