// Plain parameter structs shared by the host drivers and the kernels.
// No pybind11, no CUDA types, no standard library: NVRTC compiles this file too.
//
// Python packs these as flat float64 arrays (sfrt_engine/kernels/_task.py,
// PhotonBeamTask.pack / pack_grid); the unpack functions below are the only
// place that knows the layout on this side.
#pragma once

#include "physics/common.h"

#define SFRT_MAX_COMPONENTS 4
#define SFRT_MAX_BEAMLETS_1D 512
// Beamlets (spots) per axis that the lateral sums of physics/photon.h and proton.h hold in
// per-thread scratch arrays at once; wider ranges run in tiles of this size, with the same
// arithmetic in the same order, so the tile size never changes a result. The CPU takes a whole
// beam in one tile (no recomputation, vectorised loops). On the GPU those arrays are local
// memory reserved for every resident thread: 64 keeps them near 0.8 KB instead of about 6 KB.
#ifndef SFRT_LATERAL_TILE
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define SFRT_LATERAL_TILE 64
#else
#define SFRT_LATERAL_TILE SFRT_MAX_BEAMLETS_1D
#endif
#endif
#define SFRT_GRID_PACK_SIZE 9
#define SFRT_BEAM_PACK_SIZE 46
#define SFRT_PROTON_PACK_SIZE 46
#define SFRT_LAYER_PACK_SIZE 9

namespace sfrt {

/// Regular grid: voxel [iz][iy][ix] has its centre at origin + index * spacing [mm].
struct GridParams {
    int nx, ny, nz;
    double ox, oy, oz;  // centre of voxel [0,0,0] [mm]
    double dx, dy, dz;  // spacing [mm]
};

/// One photon beam: BEV frame, ray-table lattice, beamlet lattice, table sizes.
struct PhotonBeamParams {
    double sad;                          // source-axis distance [mm]
    double iso[3];                       // isocentre [mm]
    double eu[3], ev[3], es[3];          // BEV u, v axes and isocentre->source unit vector
    double src[3];                       // source position [mm]
    double ray_u0, ray_du; int ray_nu;   // ray lattice along u at the isocentre plane [mm]
    double ray_v0, ray_dv; int ray_nv;   // ... along v
    double ray_z0, ray_dz; int ray_nz;   // axial distance from the source of the table nodes [mm]
    double edge_u0, beamlet_du; int nbu; // beamlet edges along u: edge_u0 + i * beamlet_du [mm]
    double edge_v0, beamlet_dv; int nbv; // ... along v
    double depth_step; int ndepth;       // depth tables: node i at i * depth_step [mm]
    int ncomp;                           // lateral components (<= SFRT_MAX_COMPONENTS)
    double cutoff_sigma;                 // lateral cut-off in sigmas of each component
    double min_z;                        // voxels nearer the source than this get no dose [mm]
    // Scatter table (sfrt_engine/kernels/_task.py ScatterTable): components n_direct..ncomp-1 read
    // F[l][j][i] at u = tab_u0 + i tab_du, v = tab_v0 + j tab_dv, sigma = tab_s0 exp(l tab_log_ratio).
    int n_direct;                        // components summed over the beamlets (ncomp: no table)
    double tab_u0, tab_du; int tab_nu;   // table lattice along u at the isocentre plane [mm]
    double tab_v0, tab_dv; int tab_nv;   // ... along v
    double tab_s0, tab_log_ratio;        // sigma ladder [mm] and ln of its ratio
    int tab_nlev;                        // sigma levels
};

/// One proton beam: the same BEV frame and ray lattice as a photon beam, then the
/// layer count and the machine's per-energy tables [n_energies][ndepth].
struct ProtonBeamParams {
    double sad;
    double iso[3];
    double eu[3], ev[3], es[3];
    double src[3];
    double ray_u0, ray_du; int ray_nu;
    double ray_v0, ray_dv; int ray_nv;
    double ray_z0, ray_dz; int ray_nz;
    int n_layers;
    int n_energies, ndepth; double depth_step;  // idd and sigma tables: node i at i * depth_step [mm]
    double cutoff_sigma;                        // lateral cut-off in spot sigmas
    double min_z;                               // [mm]
};

/// One energy layer: spots at (u0 + i du, v0 + j dv) [mm, isocentre plane], weights
/// [nv][nu] in Gp starting at weight_offset in the beam's weight array; a range shifter
/// of range_shifter_mm water-equivalent thickness adds to every depth of the layer.
struct SpotLayerParams {
    int energy;  // row of the machine tables
    double u0, du; int nu;
    double v0, dv; int nv;
    long long weight_offset;
    double range_shifter_mm;
};

SFRT_HD inline GridParams unpack_grid(const double* p) {
    GridParams g;
    g.nx = (int)p[0]; g.ny = (int)p[1]; g.nz = (int)p[2];
    g.ox = p[3]; g.oy = p[4]; g.oz = p[5];
    g.dx = p[6]; g.dy = p[7]; g.dz = p[8];
    return g;
}

/// Elements 0..24 of a packed beam, shared by photon and proton packs: BEV frame and ray lattice.
template <class Beam>
SFRT_HD inline void unpack_frame(const double* p, Beam& b) {
    b.sad = p[0];
    for (int a = 0; a < 3; ++a) {
        b.iso[a] = p[1 + a];
        b.eu[a] = p[4 + a];
        b.ev[a] = p[7 + a];
        b.es[a] = p[10 + a];
        b.src[a] = p[13 + a];
    }
    b.ray_u0 = p[16]; b.ray_du = p[17]; b.ray_nu = (int)p[18];
    b.ray_v0 = p[19]; b.ray_dv = p[20]; b.ray_nv = (int)p[21];
    b.ray_z0 = p[22]; b.ray_dz = p[23]; b.ray_nz = (int)p[24];
}

SFRT_HD inline PhotonBeamParams unpack_photon_beam(const double* p) {
    PhotonBeamParams b;
    unpack_frame(p, b);
    b.edge_u0 = p[25]; b.beamlet_du = p[26]; b.nbu = (int)p[27];
    b.edge_v0 = p[28]; b.beamlet_dv = p[29]; b.nbv = (int)p[30];
    b.depth_step = p[31]; b.ndepth = (int)p[32]; b.ncomp = (int)p[33];
    b.cutoff_sigma = p[34]; b.min_z = p[35];
    b.n_direct = (int)p[36];
    b.tab_u0 = p[37]; b.tab_du = p[38]; b.tab_nu = (int)p[39];
    b.tab_v0 = p[40]; b.tab_dv = p[41]; b.tab_nv = (int)p[42];
    b.tab_s0 = p[43]; b.tab_log_ratio = p[44]; b.tab_nlev = (int)p[45];
    return b;
}

SFRT_HD inline ProtonBeamParams unpack_proton_beam(const double* p) {
    ProtonBeamParams b;
    unpack_frame(p, b);
    b.n_layers = (int)p[25];
    b.n_energies = (int)p[26]; b.ndepth = (int)p[27]; b.depth_step = p[28];
    b.cutoff_sigma = p[29]; b.min_z = p[30];
    return b;
}

/// Layer l of a packed [n_layers][SFRT_LAYER_PACK_SIZE] float64 array.
SFRT_HD inline SpotLayerParams unpack_layer(const double* layers, int l) {
    const double* p = layers + (long long)l * SFRT_LAYER_PACK_SIZE;
    SpotLayerParams s;
    s.energy = (int)p[0];
    s.u0 = p[1]; s.du = p[2]; s.nu = (int)p[3];
    s.v0 = p[4]; s.dv = p[5]; s.nv = (int)p[6];
    s.weight_offset = (long long)p[7];
    s.range_shifter_mm = p[8];
    return s;
}

}  // namespace sfrt
