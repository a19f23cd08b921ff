#ifndef CFAKECERTS_H
#define CFAKECERTS_H
#endif
